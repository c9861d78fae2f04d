"""意見照会 (issue #13 item 8)."""
