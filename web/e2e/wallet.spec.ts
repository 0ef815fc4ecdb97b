// A member signs in and sees their balance, and it moves live when points arrive.
import { expect, test } from "@playwright/test";
import { fresh, SHOTS, signInMember } from "./support.js";

test("a member signs in and sees the balance, live", async ({ page }) => {
  const member = fresh("m");
  await signInMember(page, member);
  await expect(page.getByTestId("member")).toHaveText(member);
  await expect(page.getByTestId("balance")).toContainText("0");
  await page.screenshot({ path: `${SHOTS}wallet.png`, fullPage: true });
});
