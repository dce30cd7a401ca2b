"""The chapter's Exemplo 2 encrypted chat server (Servidor_seguro.py), byte
for byte in behaviour.

One Fernet key per process, sent in clear to each client at connect; the
client's first recv(1024) must decrypt to b'OK' or its thread dies (the
socket stays open, as in the original); then each recv(1024) chunk from a
synced client is relayed unchanged to every synced client, the sender
included. The server never decrypts the chat.
Differences from the original, for tests only: the port comes from argv
(0 = any free port), the bound address is printed as `listening on IP:PORT`
on stderr so a test can find it, the sync message goes to stderr, threads
are daemons, and a failed send to one client does not stop the broadcast to
the others.

usage: python3 chapter_secure_server.py [PORT]
"""
import socket
import sys
import threading

from cryptography.fernet import Fernet

server_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
IP, PORT = 'localhost', int(sys.argv[1]) if len(sys.argv) > 1 else 8000
server_socket.bind((IP, PORT))
server_socket.listen(5)
print(f'listening on {server_socket.getsockname()[0]}:{server_socket.getsockname()[1]}',
      file=sys.stderr, flush=True)

clients = []

UNIQUE_KEY = Fernet.generate_key()
f = Fernet(UNIQUE_KEY)


def broadcast(message):
    for client in list(clients):
        try:
            client.send(message)
        except OSError:
            pass


def handle_client(client_socket, client_address):
    client_socket.send(UNIQUE_KEY)
    recv_data = client_socket.recv(1024)
    if f.decrypt(recv_data) == b'OK':
        print(f'Cliente {client_address} sincronizado', file=sys.stderr, flush=True)
        clients.append(client_socket)
    else:
        return False
    while True:
        try:
            message = client_socket.recv(1024)
            if message:
                broadcast(message)
            else:
                clients.remove(client_socket)
                client_socket.close()
                break
        except Exception:
            if client_socket in clients:
                clients.remove(client_socket)
            client_socket.close()
            break


while True:
    client_socket, client_address = server_socket.accept()
    threading.Thread(target=handle_client, args=(client_socket, client_address),
                     daemon=True).start()
