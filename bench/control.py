#!/usr/bin/env python3
"""Time `/add` of one process replica until it serves, for bench/control.sh.

usage: control.py DATA_PORT CONTROL_PORT TRIALS NAME

First finds a request ID that NAME owns on the ring (add NAME, probe ?rid= values until the
answer's X-Server-Name is NAME, remove it). Then TRIALS times: POST /add {"n":1,"hostnames":[NAME]}
(ringlb answers once the new replica passed its first heartbeat), then at once one request with
that ID; records the time /add took and the time from sending /add to the routed answer, and who
answered; then DELETE /rm. Prints a JSON object.
"""

import http.client
import json
import statistics as st
import sys
import time


def call(port, method, path, body=None, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    hdrs = {"Connection": "close"}
    if body is not None:
        body = json.dumps(body)
        hdrs["Content-Type"] = "application/json"
    c.request(method, path, body=body, headers=hdrs)
    r = c.getresponse()
    data = r.read()
    name = r.getheader("X-Server-Name")
    c.close()
    return r.status, data, name


def replicas(ctl):
    _, data, _ = call(ctl, "GET", "/rep")
    return json.loads(data)["message"]["replicas"]


def wait_n(ctl, n, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if len(replicas(ctl)) == n:
            return
        time.sleep(0.05)
    raise SystemExit(f"control.py: pool did not reach {n} replicas")


def main():
    data, ctl, trials, name = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    end = time.time() + 30
    while time.time() < end:
        try:
            if call(ctl, "GET", "/readyz")[0] == 200:
                break
        except OSError:
            pass
        time.sleep(0.1)
    base = len(replicas(ctl))
    add = {"n": 1, "hostnames": [name]}
    # Which request ID lands on NAME? Placement depends on names only, so it stays the same.
    st_, body, _ = call(ctl, "POST", "/add", add, timeout=30)
    if st_ != 200:
        raise SystemExit(f"control.py: /add answered {st_}: {body!r}")
    rid = None
    for r in range(100000, 100400):
        if call(data, "GET", f"/home?rid={r}")[2] == name:
            rid = r
            break
    call(ctl, "DELETE", "/rm", add)
    wait_n(ctl, base)
    if rid is None:
        raise SystemExit(f"control.py: no request ID among 400 landed on {name}")
    samples = []
    for _ in range(trials):
        t0 = time.perf_counter()
        status, body, _ = call(ctl, "POST", "/add", add, timeout=30)
        t1 = time.perf_counter()
        if status != 200:
            raise SystemExit(f"control.py: /add answered {status}: {body!r}")
        code, _, who = call(data, "GET", f"/home?rid={rid}")
        t2 = time.perf_counter()
        first_by_it = who == name
        # If the first answer came from elsewhere, how long until NAME serves its ID?
        t3 = t2
        while who != name and time.perf_counter() - t0 < 5:
            code, _, who = call(data, "GET", f"/home?rid={rid}")
            t3 = time.perf_counter()
        samples.append({"add_ms": (t1 - t0) * 1e3, "first_request_ms": (t2 - t0) * 1e3,
                        "served_by_new_ms": (t3 - t0) * 1e3 if who == name else None,
                        "first_request_by_new": first_by_it, "status": code})
        call(ctl, "DELETE", "/rm", add)
        wait_n(ctl, base)
        time.sleep(0.2)
    med = lambda k: st.median(s[k] for s in samples if s[k] is not None)
    print(json.dumps({"rid": rid, "name": name, "trials": trials,
                      "add_ms_median": med("add_ms"), "first_request_ms_median": med("first_request_ms"),
                      "served_by_new_ms_median": med("served_by_new_ms"),
                      "first_request_by_new": sum(s["first_request_by_new"] for s in samples),
                      "samples": samples}, indent=1))


if __name__ == "__main__":
    main()
