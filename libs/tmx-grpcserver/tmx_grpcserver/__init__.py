"""gRPC server scaffold shared by health, planner and registry."""

from tmx_grpcserver.errors import grpc_errors, status_for
from tmx_grpcserver.lifecycle import run_until_signalled, serve_until
from tmx_grpcserver.server import GrpcServer

__all__ = ["GrpcServer", "grpc_errors", "run_until_signalled", "serve_until", "status_for"]
