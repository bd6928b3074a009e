#!/usr/bin/env python3
"""docs_screenshot.py -- takes the dashboard picture for docs/dashboard.png.

Not a test: starts the stack (rel flavour), opens the dashboard in headless
Chromium, sends orders for a while, stops shipment (payment's breaker opens),
starts it again (half-open, then closed) and writes the screenshot to the path
given (default build/results/dashboard-docs.png). About a minute.
"""
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[0] / "py"))
sys.path.insert(0, str(HERE))
from harness import BUILD, Stack, http  # noqa: E402
from run_obs_tests import order_body  # noqa: E402
from webdriver import Browser  # noqa: E402


def traffic(order, seconds, rate=6.0):
    """Sends orders at about rate per second for seconds."""
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        http("POST", order.url("/create"), order_body(i), timeout=5)
        i += 1
        time.sleep(1.0 / rate)


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else BUILD / "results" / "dashboard-docs.png"
    with Stack(flavour="rel") as st:
        ship = st.service("shipment", env={"INJECT_ERR": "1", "ERR_RATE": "0.15"})
        pay = st.service("payment", chain=ship, env={"CB_RESET_TIMEOUT_MS": "4000"})
        order = st.service("order", chain=pay)
        services = ",".join(f"{s.name}@http://127.0.0.1:{s.port}" for s in (order, pay, ship))
        with Browser(width=1400, height=900) as b:
            b.get(f"http://127.0.0.1:{order.port}/dashboard?services={services}")
            traffic(order, 25)
            ship.stop()
            traffic(order, 10)
            ship.start()
            traffic(order, 15)
            b.screenshot(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
