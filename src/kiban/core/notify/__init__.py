"""Notifications every module shares (core/notify): templates with placeholders per tenant,
e-mail over SMTP and in-app notices, written to an outbox in the caller's transaction and
delivered by a durable job with retries, rate limits and daily allowances. See docs/notify.md."""
