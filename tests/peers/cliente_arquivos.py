"""The chapter's Exemplo 3 file client (cliente.py), byte for byte on the
wire: it connects, reads one recv(1024) as the listing, sends
`GET <name>` (no newline), then writes every recv(1024) into
downloads/<name> until a recv is exactly `OK`.

Differences from the original, for tests only: the port, the name and the
download folder come from argv instead of input(); it prints the listing it
received on stdout; and instead of spinning forever when the server closes
(a recv returning b'' while waiting for `OK`, which is what happens on
Linux when `OK` arrives glued to the data), it stops at EOF and prints
`EOF` -- the bytes written are the original's, `OK` included.

usage: python3 cliente_arquivos.py PORT NAME DOWNLOAD_FOLDER
"""
import os
import socket
import sys

buffer_size = 1024
PORT = int(sys.argv[1])
file_name = sys.argv[2]
download_path = sys.argv[3].rstrip('/') + '/'

client_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
client_socket.connect(('localhost', PORT))

file = client_socket.recv(1024)
print(file.decode(), end='', flush=True)

client_socket.send(f'GET {file_name}'.encode())

with open(download_path + file_name, 'wb') as f:
    while True:
        data = client_socket.recv(buffer_size)
        if data == b'OK':
            print('OK', flush=True)
            break
        if not data:
            print('EOF', flush=True)
            break
        f.write(data)

client_socket.close()
