"""The chapter's Exemplo 1 chat client (Cliente.py), byte for byte in behaviour.

Sends each input line's UTF-8 with no newline (an empty line sends nothing,
as `send(b'')` does); a listener thread prints each recv(1024) chunk.
Differences from the original, for tests only: the port comes from argv,
lines come from stdin with a short pause between sends, each received chunk
is printed (decoded with replacement, so a split character does not kill the
listener) on its own stdout line and flushed, and the script exits a short
while after stdin EOF instead of looping forever.

usage: python3 chapter_chat_client.py PORT [PAUSE_SECONDS] < lines
"""
import socket
import sys
import threading
import time

PORT = int(sys.argv[1])
PAUSE = float(sys.argv[2]) if len(sys.argv) > 2 else 0.1
LINGER = 1.0

client_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
client_socket.connect(('localhost', PORT))


def listen():
    while True:
        try:
            chunk = client_socket.recv(1024)
        except OSError:
            return
        if not chunk:
            return
        print(chunk.decode('utf-8', errors='replace'), flush=True)


threading.Thread(target=listen, daemon=True).start()

for line in sys.stdin:
    message = line.rstrip('\r\n')
    client_socket.send(message.encode('utf-8'))
    time.sleep(PAUSE)

time.sleep(LINGER)
client_socket.close()
