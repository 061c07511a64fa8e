"""The annotations pages, a module per concern: labels (annotators), queues and exports
(researchers), tokens (API tokens)."""
