"""The data plane: parse HTTP, route to a function, pick an instance, proxy bytes."""

from hearth.gateway.config import GatewayConfig
from hearth.gateway.routes import Backend, Pool, Route, RouteLimits, pick
from hearth.gateway.server import Gateway

__all__ = ["Backend", "Gateway", "GatewayConfig", "Pool", "Route", "RouteLimits", "pick"]
