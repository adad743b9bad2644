"""engine.server: the serving front (C++ gRPC data plane in server/*.cc, Python launcher here)."""
