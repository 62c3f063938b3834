"""The service emulator: one replica of one service as a real HTTP server (being built)."""

__all__: list[str] = []
