// @vitest-environment node
// The API's types cannot drift from functions/api/src/openapi.json: regenerating them
// must give the committed file (`npm run gen:api` updates it).
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import openapiTS, { astToString } from "openapi-typescript";

describe("schema.d.ts", () => {
  it("is what openapi-typescript generates from openapi.json", async () => {
    const spec = new URL("../../../functions/api/src/openapi.json", import.meta.url);
    const ast = await openapiTS(JSON.parse(readFileSync(fileURLToPath(spec), "utf8")));
    const generated = astToString(ast);
    const committed = readFileSync(fileURLToPath(new URL("./schema.d.ts", import.meta.url)), "utf8");
    const body = (s: string) => s.slice(s.indexOf("export")).trim();
    expect(body(committed)).toBe(body(generated));
  }, 30_000);
});
