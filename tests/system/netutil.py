"""Shared by the system tests: loopback ports for a daemon under test."""
import socket


def free_port(kind=socket.SOCK_DGRAM):
    """A loopback port the kernel just handed out (free when this returns; another process
    could still take it before the caller binds it)."""
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def free_udp_port():
    return free_port(socket.SOCK_DGRAM)
