"""Adapters: the database (ORM models and the store's SQL), download files on disk, webhook
delivery over HTTP and signing: the parts that talk to the world outside the domain."""
