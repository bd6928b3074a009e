#!/usr/bin/env python3
"""docs_screenshot.py -- takes the dashboard picture for docs/dashboard.png.

Not a test: starts the stack (rel flavour, ADMIN_TOKEN on every service),
opens the dashboard in headless Chromium (a 1400x1000 page), types the admin token,
sends orders, and steers the faults from the dashboard's own controls: every
shipment call fails for 15 s (payment's breaker opens, its half-open trials
fail, the fault expires, the circuit closes), then a latency fault with
jitter on half of shipment's calls. Writes the screenshot to the path given
(default build/results/dashboard-docs.png) and prints whether the page
scrolls. About a minute.
"""
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[0] / "py"))
sys.path.insert(0, str(HERE))
import harness  # noqa: E402
from harness import BUILD, Stack, http  # noqa: E402
from run_obs_tests import order_body, set_fault_from_dashboard  # noqa: E402
from webdriver import Browser  # noqa: E402

TOKEN = "docs-token"


def traffic(order, stop, rate=6.0):
    """Sends orders at about rate per second until stop is set."""
    i = 0
    while not stop.is_set():
        try:
            http("POST", order.url("/create"), order_body(i), timeout=5)
        except OSError:
            pass
        i += 1
        stop.wait(1.0 / rate)


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else BUILD / "results" / "dashboard-docs.png"
    order_port = harness.free_port()
    # the page is served by order; the services it steers must allow its origin
    env = {"ADMIN_TOKEN": TOKEN, "CB_RESET_TIMEOUT_MS": "4000", "CB_VOLUME_THRESHOLD": "5",
           "ADMIN_ALLOWED_ORIGIN": f"http://127.0.0.1:{order_port}"}
    with Stack(flavour="rel") as st:
        ship = st.service("shipment", env=env)
        pay = st.service("payment", chain=ship, env=env)
        order = st.service("order", chain=pay, env=env, port=order_port)
        services = ",".join(f"{s.name}@http://127.0.0.1:{s.port}" for s in (order, pay, ship))
        stop = threading.Event()
        sender = threading.Thread(target=traffic, args=(order, stop))
        with Browser() as b:
            b.set_viewport(1400, 1000)
            b.get(f"http://127.0.0.1:{order.port}/dashboard?services={services}")
            b.type("#token", TOKEN)
            sender.start()
            try:
                time.sleep(15)
                print(set_fault_from_dashboard(b, "shipment", {"error": {"fraction": "1"}}, 15))
                time.sleep(24)
                print(set_fault_from_dashboard(
                    b, "shipment", {"latency": {"fraction": "0.5", "ms": "120", "jitter_ms": "40"}},
                    600))
                time.sleep(8)
            finally:
                stop.set()
                sender.join()
            b.screenshot(out)
            fit = b.script("return [document.scrollingElement.scrollHeight, window.innerHeight,"
                           " document.scrollingElement.scrollWidth, window.innerWidth]")
    print(f"wrote {out}; page height {fit[0]} in a {fit[1]} px window, width {fit[2]} in {fit[3]}")


if __name__ == "__main__":
    main()
