"""The settings page on a phone (360 px wide): nothing scrolls sideways, the operators table is a
stack of cards, and every one of its controls is in view and works."""

from __future__ import annotations

from playwright.async_api import expect

from tests.browser.conftest import UI_TIMEOUT_MS, sign_in

PHONE = {"width": 360, "height": 780}
# Whatever the page holds, how far it reaches to the right (the page must not exceed the screen).
PAGE_WIDTH_JS = "() => document.scrollingElement.scrollWidth"


async def in_view(locator) -> None:
    """Assert the control lies within the phone's width, without scrolling sideways."""
    box = await locator.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box


async def test_the_settings_fit_a_phone_and_every_operator_control_works(browser, desk, fake_telegram):
    _, admin_token = await desk.operator("boss", role="admin", name="Maria Jensen")
    channel = await desk.telegram_channel(admin_token, fake_telegram)
    billing = await desk.call("POST", "/api/queues", admin_token, {"name": "Billing"}, status=201)
    # A long name, a long login and several queues: what widens a table most.
    lena, _ = await desk.operator("lena.schneider-obermaier", name="Lena Schneider-Obermaier",
                                  queue_ids=[channel["queue_id"], billing["id"]])
    page = await sign_in(browser, desk.url, "boss", viewport=PHONE)
    await page.goto(f"{desk.url}/settings#operators")
    await page.locator('#settings[data-loading="false"]').wait_for(state="attached", timeout=UI_TIMEOUT_MS)
    await expect(page.locator("#section-operators")).to_be_visible()
    assert await page.evaluate(PAGE_WIDTH_JS) <= PHONE["width"]

    row = page.get_by_test_id("operator").filter(has_text="Lena Schneider-Obermaier")
    await expect(row).to_contain_text("General, Billing")
    controls = {
        "status": row.locator("select.status-select"),
        "edit": row.get_by_role("button", name="Edit Lena Schneider-Obermaier"),
        "password": row.get_by_role("button", name="Reset the password of Lena Schneider-Obermaier"),
        "disable": row.get_by_role("button", name="Disable"),
        "delete": row.get_by_role("button", name="Delete Lena Schneider-Obermaier"),
    }
    for control in controls.values():
        await in_view(control)

    await controls["status"].select_option("busy")
    await expect(row.locator(".status-picker")).to_have_attribute("data-status", "busy")
    await controls["edit"].click()
    await expect(page.locator("#operator-dialog")).to_be_visible()
    await expect(page.locator('#operator-form input[name="name"]')).to_have_value("Lena Schneider-Obermaier")
    await page.locator("#operator-dialog [data-close]").click()
    await controls["password"].click()
    await expect(page.locator("#password-dialog")).to_be_visible()
    await page.locator("#password-dialog [data-close]").click()
    await controls["disable"].click()
    await expect(row).to_contain_text("Disabled")
    await in_view(row.get_by_role("button", name="Enable"))
    await controls["delete"].click()
    await expect(page.locator("#confirm-dialog")).to_be_visible()
    await page.click("#confirm-cancel")
    operator = next(op for op in await desk.get("/api/operators", admin_token) if op["id"] == lena["id"])
    assert operator["status"] == "busy" and operator["enabled"] is False
    assert await page.evaluate(PAGE_WIDTH_JS) <= PHONE["width"]

    # The other sections fit too.
    for section in ("channels", "queues", "embedding"):
        await page.click(f'.settings-nav-link[data-section="{section}"]')
        await expect(page.locator(f"#section-{section}")).to_be_visible()
        assert await page.evaluate(PAGE_WIDTH_JS) <= PHONE["width"], section
    await in_view(page.locator("#embed-secret-rotate"))
    assert page.errors == []
