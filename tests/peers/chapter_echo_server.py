"""The chapter's echo servers, in behaviour: Pratica 2 "loopback" (TCP) and
the UDP echo of the introductory practice.

TCP (default): listen(1); serve ONE connection at a time: recv(10240), send
the same bytes back with a single send(), until the client closes; only then
accept the next. UDP (--udp): recvfrom(1024), sendto the same bytes back to
the sender (a longer datagram comes back cut to 1024 bytes, as with the
chapter's buffer size).

Differences from the originals, for tests only: one port instead of three,
the port comes from argv (0 = any free port), the bound address is printed as
`listening on IP:PORT` on stderr so a test can find it, and the received
bytes are not printed (a test never reads the server's stdout).

usage: python3 chapter_echo_server.py [PORT] [--udp]
"""
import socket
import sys

args = [a for a in sys.argv[1:] if not a.startswith('--')]
UDP = '--udp' in sys.argv[1:]
IP, PORT = '127.0.0.1', int(args[0]) if args else 50505


def announce(sock):
    host, port = sock.getsockname()[:2]
    print(f'listening on {host}:{port}', file=sys.stderr, flush=True)


def serve_tcp():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind((IP, PORT))
    server.listen(1)
    announce(server)
    while True:
        connection, _addr = server.accept()
        while True:
            try:
                data = connection.recv(10240)
            except OSError:
                break
            if not data:
                break
            try:
                connection.send(data)
            except OSError:
                break
        connection.close()


def serve_udp():
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind((IP, PORT))
    announce(server)
    while True:
        data, addr = server.recvfrom(1024)
        server.sendto(data, addr)


if __name__ == '__main__':
    try:
        serve_udp() if UDP else serve_tcp()
    except KeyboardInterrupt:
        pass
