"""Live delivery: a chat's events to its open event streams, from one writer per chat.

Read in this order: chats.py (the streams of this process, by chat), response.py (a stream's
own part: its head, its first pages, its end), writer.py (the chat's writer, which takes over
once a stream is at the chat's end), stream.py (one subscriber's position and outcome),
news.py (what is new after a position, read and encoded once), sse.py (the bytes),
send_now.py (a send that never waits), shutdown.py (when uvicorn stops).
"""
