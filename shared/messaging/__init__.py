"""RabbitMQ plumbing: topology, confirmed persistent publishing, the consumer policy."""
