"""Private delivery: the outbox entry, the outbox, the delivery mode and the send-worker."""
