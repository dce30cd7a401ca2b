"""The chapter's Exemplo 2 encrypted chat client (Cliente_seguro.py), byte
for byte in behaviour.

Takes the key from one recv(1024), sends Fernet(key).encrypt(b'OK'), then
each input line's UTF-8 as one token (encrypt(message.encode())); a listener
thread decrypts each recv(1024) chunk as one token and prints it.
Differences from the original, for tests only: the port comes from argv,
lines come from stdin with a short pause after the sync token and between
sends (so the chapter's server never reads two tokens in one recv), an
empty line sends nothing, each message received is printed on its own
stdout line and flushed (a chunk that does not decrypt prints
`! undecryptable N bytes` instead of killing the listener), and the script
exits a short while after stdin EOF instead of looping forever.

usage: python3 chapter_secure_client.py PORT [PAUSE_SECONDS] < lines
"""
import socket
import sys
import threading
import time

from cryptography.fernet import Fernet, InvalidToken

PORT = int(sys.argv[1])
PAUSE = float(sys.argv[2]) if len(sys.argv) > 2 else 0.1
LINGER = 1.0

client_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
client_socket.connect(('localhost', PORT))

UNIQUE_KEY = client_socket.recv(1024)
f = Fernet(UNIQUE_KEY)
client_socket.send(f.encrypt(b'OK'))


def listen():
    while True:
        try:
            data = client_socket.recv(1024)
        except OSError:
            return
        if not data:
            return
        try:
            print(f.decrypt(data).decode(), flush=True)
        except InvalidToken:
            print(f'! undecryptable {len(data)} bytes', flush=True)


threading.Thread(target=listen, daemon=True).start()

time.sleep(PAUSE)
for line in sys.stdin:
    message = line.rstrip('\r\n')
    if message:
        client_socket.send(f.encrypt(message.encode()))
    time.sleep(PAUSE)

time.sleep(LINGER)
client_socket.close()
