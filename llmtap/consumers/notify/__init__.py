"""The notifier: delivers the notify outbox to Slack and signed webhooks, with retries."""
