"""The chapter's Exemplo 1 chat server (Servidor.py), byte for byte in behaviour.

Thread per client; each recv(1024) chunk is relayed unchanged to every
connected client, including the sender. No prefix, no names, no server text.
Differences from the original, for tests only: the port comes from argv
(0 = any free port) and the bound address is printed as `listening on IP:PORT`
on stderr so a test can find it; accept runs until killed.

usage: python3 chapter_chat_server.py [PORT]
"""
import socket
import sys
import threading

server_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
IP, PORT = 'localhost', int(sys.argv[1]) if len(sys.argv) > 1 else 8000
server_socket.bind((IP, PORT))
server_socket.listen(5)
print(f'listening on {server_socket.getsockname()[0]}:{server_socket.getsockname()[1]}',
      file=sys.stderr, flush=True)

clients = []


def broadcast(message):
    for client in list(clients):
        try:
            client.send(message)
        except OSError:
            pass


def handle_client(client_socket, client_address):
    clients.append(client_socket)
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
