"""The web console in a real browser against a real 3-broker cluster: every page, a broker killed mid-test,
a group's offsets reset through the UI (checked over the API), a binary key with a JSON value shown right.

Screenshots of every page are saved (see conftest.py; docs/console.md shows them)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select

import support
from replication.conftest import Cluster

TIMEOUT_S = 30
BINARY_KEY_B64 = "AAH/"  # bytes 00 01 ff: not text
JSON_VALUE = {"amount": 12.5, "currency": "EUR"}


def wait_for(driver: Chrome, condition: Callable[[], Any], what: str, timeout: float = TIMEOUT_S) -> Any:
    """:func:`support.wait_for` with a page's elements that are not there yet (or replaced) counting as "not yet"."""
    return support.wait_for(
        condition, timeout, what, interval=0.1, retry_on=(NoSuchElementException, StaleElementReferenceException)
    )


def find(driver: Chrome, css: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, css)


def open_page(driver: Chrome, console: str, route: str) -> None:
    """Open a route and wait for its first live update (the router marks each one on <body>)."""
    driver.get(f"{console}/#{route}")
    driver.refresh()  # a hash change alone does not reload: start from a clean page
    wait_for(driver, lambda: driver.execute_script("return document.body.dataset.refreshed"), f"{route} loaded")


def settle_refreshes(driver: Chrome, count: int = 2) -> None:
    """Wait for ``count`` more live updates (rates need two readings)."""
    for _ in range(count):
        seen = driver.execute_script("return document.body.dataset.refreshed")
        wait_for(
            driver, lambda seen=seen: driver.execute_script("return document.body.dataset.refreshed") != seen, "refresh"
        )


def cell_texts(driver: Chrome, css: str, label: str) -> list[str]:
    return [cell.text for cell in driver.find_elements(By.CSS_SELECTOR, f"{css} td[data-label='{label}']")]


@contextmanager
def background_traffic(url: str, topic: str) -> Iterator[None]:
    """A producer writing small records until the block ends (the overview's bytes in/out)."""
    stop = threading.Event()

    def run() -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            n = 0
            while not stop.wait(0.1):
                n += 1
                http.post(f"/v1/topics/{topic}/records", json={"records": [{"value": f"click-{n}" * 20}]})
                http.get(f"/v1/topics/{topic}/partitions/0/records", params={"offset": 0, "max_wait_ms": 0})

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def join_commit_leave(url: str, group: str, topic: str, offset: int) -> None:
    """A consumer that takes every partition, commits ``offset`` on each, and leaves (the group is empty)."""
    with httpx.Client(base_url=url, timeout=10) as http:
        deadline = time.monotonic() + TIMEOUT_S
        while True:  # the first group write creates __consumer_offsets: its leaders may take a moment
            response = http.post(f"/v1/groups/{group}/heartbeat", json={"member_epoch": 0, "topics": [topic]})
            if response.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert response.status_code == 200, response.text
        joined = response.json()
        member, epoch = joined["member_id"], joined["member_epoch"]
        partitions = [p for a in joined["assignment"] for p in a["partitions"]]
        assert partitions, joined
        offsets = [{"topic": topic, "partition": p, "offset": offset} for p in partitions]
        commit = http.post(
            f"/v1/groups/{group}/offsets", json={"member_id": member, "member_epoch": epoch, "offsets": offsets}
        )
        assert commit.status_code == 200, commit.text
        http.post(f"/v1/groups/{group}/heartbeat", json={"member_id": member, "member_epoch": -1})


def group_with_lags(api: httpx.Client, group: str) -> dict[str, Any] | None:
    """The group as the API describes it, once every lag is known (null while a leader does not answer)."""
    described: dict[str, Any] = api.get(f"/v1/groups/{group}").json()
    return described if all(p["lag"] is not None for p in described["partitions"]) else None


def severe_browser_errors(driver: Chrome) -> list[str]:
    """Script errors in the page (failed requests to a killed broker are expected and shown in the page)."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]
    ]


def test_every_page_of_the_console_against_a_three_broker_cluster(
    cluster_factory: Callable[..., Cluster],
    console_factory: Callable[[Sequence[str]], str],
    browser: Chrome,
    screenshots: Path,
) -> None:
    cluster = cluster_factory(3)
    cluster.create_topic("orders", 3, 3, {"min.insync.replicas": "2", "retention.ms": "-1"})
    cluster.create_topic("clicks", 1, 3)
    api = httpx.Client(base_url=cluster.url(0), timeout=10)
    text_records = [{"key": f"customer-{i}", "value": f"order {i}", "partition": i % 3} for i in range(9)]
    assert api.post("/v1/topics/orders/records", json={"records": text_records}).status_code == 200
    binary = {
        "key_format": "base64",
        "records": [
            {
                "key": BINARY_KEY_B64,
                "value": json.dumps(JSON_VALUE),
                "partition": 1,
                "headers": [{"key": "trace-id", "value": "trace-7"}],
            }
        ],
    }
    assert api.post("/v1/topics/orders/records", json=binary).status_code == 200
    join_commit_leave(cluster.url(0), "billing", "orders", 1)
    console = console_factory([cluster.url(b) for b in cluster.brokers])
    driver = browser

    with background_traffic(cluster.url(1), "clicks"):
        # -- overview: three brokers up, leaderships, rates ------------------------------------------------
        open_page(driver, console, "/")
        wait_for(driver, lambda: "3 / 3" in find(driver, "#overview-cards").text, "three brokers up")
        settle_refreshes(driver, 2)
        assert cell_texts(driver, "#overview-brokers", "State") == ["up", "up", "up"]
        leaders = [int(v) for v in cell_texts(driver, "#overview-brokers", "Leaders")]
        assert sum(leaders) == find_partitions(api)
        wait_for(driver, lambda: any(v != "0 B/s" for v in cell_texts(driver, "#overview-brokers", "In")), "bytes in")
        driver.save_screenshot(str(screenshots / "overview.png"))

    # -- topics: list, create through the form -------------------------------------------------------------
    open_page(driver, console, "/topics")
    wait_for(driver, lambda: driver.find_element(By.LINK_TEXT, "orders"), "orders listed")
    find(driver, "#create-topic input[name=name]").send_keys("payments")
    partitions_input = find(driver, "#create-topic input[name=partitions]")
    partitions_input.clear()
    partitions_input.send_keys("1")
    find(driver, "#create-topic button[type=submit]").click()
    wait_for(driver, lambda: driver.find_element(By.LINK_TEXT, "payments"), "payments created")
    assert api.get("/v1/topics/payments").json()["replication_factor"] >= 1
    driver.save_screenshot(str(screenshots / "topics.png"))

    # -- one topic: partitions, config edit, add partitions, delete with confirmation ----------------------
    open_page(driver, console, "/topics/orders")
    wait_for(driver, lambda: len(cell_texts(driver, "#topic-partitions", "Leader")) == 3, "three partitions")
    assert cell_texts(driver, "#topic-partitions", "ISR") == ["0, 1, 2"] * 3 or all(
        len(isr.split(",")) == 3 for isr in cell_texts(driver, "#topic-partitions", "ISR")
    )
    retention = find(driver, "input[data-config='retention.ms']")
    retention.clear()
    retention.send_keys("86400000")
    find(driver, "#config-form button[type=submit]").click()
    wait_for(driver, lambda: "Saved retention.ms" in find(driver, "#topic-status").text, "config saved")
    assert api.get("/v1/topics/orders").json()["config_overrides"]["retention.ms"] == "86400000"
    driver.execute_script("window.scrollTo(0, 0)")  # the partitions, not the configs form just submitted
    driver.save_screenshot(str(screenshots / "topic.png"))

    open_page(driver, console, "/topics/payments")
    wait_for(driver, lambda: len(cell_texts(driver, "#topic-partitions", "Leader")) == 1, "payments shown")
    count = find(driver, "#partition-count")
    count.clear()
    count.send_keys("4")
    find(driver, "#add-partitions button").click()
    wait_for(driver, lambda: len(api.get("/v1/topics/payments").json()["partitions"]) == 4, "partitions added")
    find(driver, "#delete-topic").click()
    wait_for(driver, lambda: find(driver, "#confirm-name").is_displayed(), "confirmation asked")
    find(driver, "#confirm-name").send_keys("payments")
    driver.save_screenshot(str(screenshots / "topic-delete.png"))
    find(driver, "#confirm-ok").click()
    wait_for(driver, lambda: api.get("/v1/topics/payments").status_code == 404, "payments deleted")
    wait_for(driver, lambda: driver.execute_script("return location.hash") == "#/topics", "back to the list")

    # -- messages: a binary key and a JSON value, decodings, search, download, live tail ------------------
    open_page(driver, console, "/messages?topic=orders")
    wait_for(driver, lambda: "10 of 10 loaded" in find(driver, "#msg-status").text, "records loaded")
    row = driver.find_element(By.XPATH, "//tr[td[@data-label='Key']//pre[text()='00 01 ff']]")
    assert "hex (binary)" in row.find_element(By.CSS_SELECTOR, "td[data-label='Key']").text
    value_pre = row.find_element(By.CSS_SELECTOR, "td[data-label='Value'] pre")
    assert value_pre.text == json.dumps(JSON_VALUE, indent=2)
    assert row.find_element(By.CSS_SELECTOR, "td[data-label='Headers']").text == "trace-id: trace-7"
    driver.save_screenshot(str(screenshots / "messages.png"))
    Select(find(driver, "#msg-value-format")).select_by_value("base64")
    row = driver.find_element(By.XPATH, "//tr[td[@data-label='Key']//pre[text()='00 01 ff']]")
    value_b64 = row.find_element(By.CSS_SELECTOR, "td[data-label='Value'] pre").text
    assert json.loads(__import__("base64").b64decode(value_b64)) == JSON_VALUE
    Select(find(driver, "#msg-key-format")).select_by_value("base64")
    assert driver.find_elements(By.XPATH, f"//td[@data-label='Key']//pre[text()='{BINARY_KEY_B64}']")
    find(driver, "#msg-search").send_keys("trace-7")
    wait_for(driver, lambda: "1 of 10 loaded" in find(driver, "#msg-status").text, "header search")
    find(driver, "#msg-download").click()
    downloaded = driver.downloads / "orders-records.json"  # type: ignore[attr-defined]
    wait_for(driver, downloaded.exists, "download")
    saved = json.loads(downloaded.read_text())
    assert [r["key"] for r in saved["records"]] == [BINARY_KEY_B64]
    find(driver, "#msg-search").clear()
    find(driver, "#msg-search").send_keys(Keys.BACKSPACE)
    Select(find(driver, "#msg-value-format")).select_by_value("auto")
    Select(find(driver, "#msg-mode")).select_by_value("offset")
    Select(find(driver, "#msg-partition")).select_by_value("1")
    find(driver, "#msg-load").click()
    wait_for(driver, lambda: "4 of 4 loaded" in find(driver, "#msg-status").text, "partition 1 from offset 0")
    assert cell_texts(driver, "#msg-results", "Offset") == ["0", "1", "2", "3"]
    find(driver, "#msg-tail").click()
    wait_for(driver, lambda: "live" in find(driver, "#msg-status").text, "tail started")
    api.post("/v1/topics/orders/records", json={"records": [{"value": "tailed", "partition": 1}]})
    wait_for(driver, lambda: driver.find_elements(By.XPATH, "//pre[text()='tailed']"), "tailed record shown")
    find(driver, "#msg-tail").click()

    # -- produce ------------------------------------------------------------------------------------------
    open_page(driver, console, "/produce?topic=orders")
    wait_for(driver, lambda: Select(find(driver, "#produce-topic")).first_selected_option.text == "orders", "topic")
    find(driver, "#produce-partition").send_keys("2")
    find(driver, "#produce-key").send_keys("k-ui")
    find(driver, "#produce-value").send_keys("from the browser")
    find(driver, "#produce-headers").send_keys("source: ui")
    find(driver, "#produce-form button[type=submit]").click()
    wait_for(driver, lambda: "Written to partition 2" in find(driver, "#produce-result").text, "produced")
    offset = int(find(driver, "#produce-result").text.rsplit(" ", 1)[1].rstrip("."))
    params = {"offset": offset, "max_wait_ms": 5000}  # acks=1: committed once the followers have it
    record = api.get("/v1/topics/orders/partitions/2/records", params=params).json()["records"][0]
    assert (record["key"], record["value"], record["headers"]) == (
        "k-ui",
        "from the browser",
        [{"key": "source", "value": "ui"}],
    )
    driver.save_screenshot(str(screenshots / "produce.png"))

    # -- groups: lag, then a reset to latest through the UI, checked over the API -------------------------
    open_page(driver, console, "/groups")
    wait_for(driver, lambda: driver.find_element(By.LINK_TEXT, "billing"), "billing listed")
    assert cell_texts(driver, "#groups-list", "State") == ["Empty"]
    driver.save_screenshot(str(screenshots / "groups.png"))
    open_page(driver, console, "/groups/billing")
    wait_for(driver, lambda: find(driver, "#group-state").text == "Empty", "group state")
    described = wait_for(driver, lambda: group_with_lags(api, "billing"), "lags over the API")
    assert {p["committed_offset"] for p in described["partitions"]} == {1}
    expected_lag = sum(p["lag"] for p in described["partitions"])
    wait_for(driver, lambda: find(driver, "#group-lag").text == str(expected_lag), "lag shown")
    settle_refreshes(driver, 2)
    Select(find(driver, "#reset-to")).select_by_value("latest")
    find(driver, "#reset-preview-button").click()
    wait_for(driver, lambda: find(driver, "#reset-apply"), "preview")
    preview_after = [int(v.replace(",", "")) for v in cell_texts(driver, "#reset-preview", "After reset")]
    ends = {p["partition"]: p["high_watermark"] for p in api.get("/v1/topics/orders").json()["partitions"]}
    assert preview_after == [ends[p] for p in sorted(ends)]
    assert api.get("/v1/groups/billing/offsets").json()["offsets"][0]["offset"] == 1  # a preview writes nothing
    driver.save_screenshot(str(screenshots / "group.png"))
    find(driver, "#reset-apply").click()
    wait_for(driver, lambda: find(driver, "#confirm-ok").is_displayed(), "confirmation asked")
    find(driver, "#confirm-ok").click()
    wait_for(driver, lambda: find(driver, "#reset-done"), "reset done")
    committed = {o["partition"]: o["offset"] for o in api.get("/v1/groups/billing/offsets").json()["offsets"]}
    assert committed == ends
    wait_for(driver, lambda: find(driver, "#group-lag").text == "0", "lag gone")

    # -- keyboard: skip link, then the navigation, reachable with Tab and followed with Enter -------------
    open_page(driver, console, "/")
    body = find(driver, "body")
    body.send_keys(Keys.TAB)
    assert driver.switch_to.active_element.text == "Skip to content"
    for _ in range(2):
        driver.switch_to.active_element.send_keys(Keys.TAB)
    assert driver.switch_to.active_element.text == "Topics"
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    wait_for(driver, lambda: driver.execute_script("return location.hash") == "#/topics", "keyboard navigation")

    # -- a phone's width: nothing wider than the screen -----------------------------------------------------
    driver.set_window_size(390, 844)
    for route, name in (("/", "overview-phone"), ("/topics/orders", "topic-phone"), ("/groups/billing", "group-phone")):
        open_page(driver, console, route)
        settle_refreshes(driver, 1)
        overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{route} is {overflow}px wider than a phone"
        driver.save_screenshot(str(screenshots / f"{name}.png"))
    driver.set_window_size(1280, 900)

    # -- a broker killed mid-test: shown as down, then fenced; the pages keep working ------------------------
    open_page(driver, console, "/")
    cluster.kill(2)
    wait_for(driver, lambda: cell_texts(driver, "#overview-brokers", "State")[2] == "down", "broker 2 down")
    wait_for(driver, lambda: "2 / 3" in find(driver, "#overview-cards").text, "two brokers up")
    wait_for(
        driver,
        lambda: find(driver, "#overview-cards .card.bad:nth-child(4) .value").text not in ("", "0"),
        "under-replicated partitions once broker 2 is fenced",
    )
    driver.save_screenshot(str(screenshots / "overview-broker-down.png"))
    open_page(driver, console, "/topics/orders")
    wait_for(
        driver, lambda: all("2" not in isr for isr in cell_texts(driver, "#topic-partitions", "ISR")), "ISR shrunk"
    )
    assert find(driver, "#banner").get_attribute("hidden") is not None  # no error: the others answer
    open_page(driver, console, "/groups")
    wait_for(driver, lambda: driver.find_element(By.LINK_TEXT, "billing") or True, "groups")
    assert severe_browser_errors(driver) == []
    api.close()


def find_partitions(api: httpx.Client) -> int:
    """Partitions of every topic (the internal one included), as the overview counts leaderships."""
    return int(api.get("/v1/cluster").json()["partitions"]["total"])
