import { test, expect, waitForHydration } from "./fixtures";

test.describe("home page", () => {
  test("is rendered on the server and hydrated, and its server function answers", async ({ page }) => {
    const response = await page.goto("/");
    expect(response?.status()).toBe(200);
    await expect(page.getByRole("heading", { name: "Your papers, one message away" })).toBeVisible();
    await expect(page.getByText("Not checked yet.")).toBeVisible();

    await waitForHydration(page);
    await page.getByRole("button", { name: "Check system status" }).click();

    // Only a hydrated page can run the click handler that calls the server function.
    const status = page.getByRole("status");
    await expect(status.getByText("PostgreSQL up")).toBeVisible();
    await expect(status.getByText(/NATS up \(2\.\d+/)).toBeVisible();
    await expect(status.getByText("e2e")).toBeVisible();
  });

  test("an unknown page answers 404 with a way back", async ({ page }) => {
    const response = await page.goto("/no/such/page");
    expect(response?.status()).toBe(404);
    await expect(page.getByRole("heading", { name: "Page not found" })).toBeVisible();
    await waitForHydration(page);
    await page.getByRole("link", { name: "Back to the start" }).click();
    await expect(page).toHaveURL(/\/$/);
  });
});
