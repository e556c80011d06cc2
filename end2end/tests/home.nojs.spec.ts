import { test, expect } from "@playwright/test";

test("the home page is readable without JavaScript", async ({ page }) => {
  const response = await page.goto("/");
  expect(response?.status()).toBe(200);
  await expect(page.getByRole("heading", { name: "Your papers, one message away" })).toBeVisible();
  await expect(page.getByRole("heading", { name: "System status" })).toBeVisible();
});
