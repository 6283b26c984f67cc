#!/usr/bin/env python3
"""The benchmark's peer: a minimal sender. Sends N multipart (text + HTML) messages with a Chinese
subject to an SMTP server with Python's smtplib over T connections (one thread each), and prints
`sent=N seconds=S rate=R`.
Usage: smtplib_sender.py HOST:PORT N [THREADS]"""
import smtplib
import sys
import threading
import time
from email.message import EmailMessage
from email.headerregistry import Address


def build(i):
    msg = EmailMessage()
    msg["Subject"] = "图书馆讲座通知：数字资源检索入门 (%d)" % i
    msg["From"] = Address("图书馆", "library", "example.edu.cn")
    msg["To"] = Address("读者%d" % i, "r%d" % i, "example.edu.cn")
    msg["Message-ID"] = "<bench-%d@peer>" % i
    msg["List-Unsubscribe"] = "<http://127.0.0.1:8080/portal/unsubscribe/token%d>" % i
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    text = "读者%d，您好：\n\n本周四下午两点在图书馆三楼报告厅举行数字资源检索入门讲座，欢迎参加。\n" % i
    msg.set_content(text)
    msg.add_alternative("<p>读者%d，您好：</p><p>本周四下午两点在图书馆三楼报告厅举行数字资源检索入门讲座，欢迎参加。</p>" % i, subtype="html")
    return msg


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    n = int(sys.argv[2])
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    sent = [0] * threads

    def work(t):
        with smtplib.SMTP(host, int(port)) as s:
            for i in range(t, n, threads):
                m = build(i)
                s.send_message(m)
                sent[t] += 1

    start = time.perf_counter()
    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    secs = time.perf_counter() - start
    print("sent=%d seconds=%.3f rate=%.0f" % (sum(sent), secs, sum(sent) / secs))


if __name__ == "__main__":
    main()
