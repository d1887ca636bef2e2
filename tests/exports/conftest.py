from tests.demo.conftest import engines, fresh_url

__all__ = ["engines", "fresh_url"]
