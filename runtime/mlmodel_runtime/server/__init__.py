"""The Open Inference Protocol (V2) REST server: app, endpoints, data plane, codec, error table."""
