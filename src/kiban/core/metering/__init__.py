"""Metering: usage events counted per tenant, service and month (see ``service.py``)."""
