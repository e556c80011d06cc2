import { test, expect, waitForHydration } from "./fixtures";

function uniqueEmail() {
  return `ann-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.org`;
}

test.describe("accounts", () => {
  test("sign up, sign out, and sign in again with the password", async ({ page }) => {
    const email = uniqueEmail();
    const password = "correct horse battery";

    await page.goto("/signup");
    await waitForHydration(page);
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Create account" }).click();

    await expect(page).toHaveURL(/\/account$/);
    await expect(page.getByText(`Signed in as ${email}`)).toBeVisible();
    await expect(page.getByRole("navigation", { name: "Account" }).getByRole("link", { name: "Account" })).toBeVisible();

    const cookies = await page.context().cookies();
    const session = cookies.find((c) => c.name === "dossier_session");
    expect(session?.httpOnly).toBe(true);
    expect(session?.sameSite).toBe("Lax");

    // A reload keeps the session: it is rendered on the server from the cookie.
    await page.reload();
    await expect(page.getByText(`Signed in as ${email}`)).toBeVisible();

    await waitForHydration(page);
    await page.getByRole("button", { name: "Sign out" }).click();
    await expect(page).toHaveURL(/\/$/);
    await expect(page.getByRole("link", { name: "Sign in" })).toBeVisible();
    await page.goto("/account");
    await expect(page.getByText("You are not signed in.")).toBeVisible();

    await page.goto("/signin");
    await waitForHydration(page);
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill("wrong password!");
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    await expect(page.getByRole("alert")).toHaveText("wrong email or password");

    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    await expect(page).toHaveURL(/\/account$/);
    await expect(page.getByText(`Signed in as ${email}`)).toBeVisible();
  });

  test("a taken email is refused with a clear message", async ({ page }) => {
    const email = uniqueEmail();
    for (const expectOk of [true, false]) {
      await page.context().clearCookies();
      await page.goto("/signup");
      await waitForHydration(page);
      await page.getByLabel("Email").fill(email);
      await page.getByLabel("Password").fill("correct horse battery");
      await page.getByRole("button", { name: "Create account" }).click();
      if (expectOk) {
        await expect(page).toHaveURL(/\/account$/);
      } else {
        await expect(page.getByRole("alert")).toHaveText("an account with this email already exists");
      }
    }
  });
});
