"""The chapter's Exemplo 3 file server (repositorio.py), byte for byte in
behaviour: at connect it sends every name of its folder followed by `\n`
in one send (names listed once at start-up, unsorted, as os.listdir gives
them); it reads one recv(1024); a message starting with GET names a file by
its second word; the file goes out in 1024-byte send()s and then `OK` (on
Linux glued to the last chunk); a name it does not have gets
`ERROR "O arquivo <name> não existe"`; then it closes.

Differences from the original, for tests only: the folder and port come
from argv (port 0 = any free port), it binds 127.0.0.1 instead of 0.0.0.0,
prints `listening on IP:PORT` on stderr so a test can find it, and does not
print its progress lines.

usage: python3 repositorio.py FOLDER [PORT]
"""
import os
import socket
import sys
import threading

buffer_size = 1024
files_path = sys.argv[1].rstrip('/') + '/'
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 8000

server_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server_socket.bind(('127.0.0.1', PORT))
server_socket.listen(5)
host, port = server_socket.getsockname()[:2]
print(f'listening on {host}:{port}', file=sys.stderr, flush=True)

files = os.listdir(files_path)
arquivos = ""
for file in files:
    arquivos += file + "\n"


def receive_file(client_socket):
    client_socket.send(arquivos.encode())
    data = client_socket.recv(1024)
    if data.startswith(b'GET'):
        file_name = data.split()[1].decode()
        if file_name in files:
            with open(files_path + file_name, 'rb') as f:
                while True:
                    data = f.read(buffer_size)
                    if not data:
                        break
                    client_socket.send(data)
            client_socket.send(b'OK')
        else:
            data = f'ERROR "O arquivo {file_name} não existe"'
            client_socket.send(data.encode())
    client_socket.close()


try:
    while True:
        client_socket, client_address = server_socket.accept()
        threading.Thread(target=receive_file, args=(client_socket,), daemon=True).start()
except KeyboardInterrupt:
    pass
