// Query building in Doofinder v6 syntax: table tests over decoded (key, value) pairs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { buildQuery } from "../../gateway/static/imgsearch-client.js";

/** What a server that decodes the query string sees: ordered [key, value] pairs. */
const pairs = (q) => [...new URLSearchParams(q)];

const cases = [
  { name: "empty options", opts: {}, want: [] },
  { name: "terms filter with an array", opts: { filter: { color: ["red", "blue"] } },
    want: [["filter[color][]", "red"], ["filter[color][]", "blue"]] },
  { name: "single scalar filter becomes one term", opts: { filter: { brand: "acme" } },
    want: [["filter[brand][]", "acme"]] },
  { name: "numeric and boolean terms", opts: { filter: { size: [38, 40], in_stock: true } },
    want: [["filter[size][]", "38"], ["filter[size][]", "40"], ["filter[in_stock][]", "true"]] },
  { name: "range gte", opts: { filter: { price: { gte: 10 } } }, want: [["filter[price][gte]", "10"]] },
  { name: "range with every operator, in fixed order", opts: { filter: { price: { lt: 99, gt: 1, lte: 98, gte: 4.36 } } },
    want: [["filter[price][gte]", "4.36"], ["filter[price][gt]", "1"], ["filter[price][lte]", "98"], ["filter[price][lt]", "99"]] },
  { name: "range with a null bound skips it", opts: { filter: { price: { gte: null, lte: 50 } } },
    want: [["filter[price][lte]", "50"]] },
  { name: "blank filters are skipped", opts: { filter: { a: null, b: undefined, c: [], d: "", e: [null, "", "x"] } },
    want: [["filter[e][]", "x"]] },
  { name: "excludes: terms and range", opts: { exclude: { brand: ["x"], price: { gte: 100 } } },
    want: [["exclude[brand][]", "x"], ["exclude[price][gte]", "100"]] },
  { name: "filter and exclude together, filter first", opts: { exclude: { color: "red" }, filter: { color: "blue" } },
    want: [["filter[color][]", "blue"], ["exclude[color][]", "red"]] },
  { name: "facets as strings", opts: { facets: ["brand", "price"] },
    want: [["facets[0][field]", "brand"], ["facets[1][field]", "price"]] },
  { name: "facets with size and type", opts: { facets: [{ field: "brand", size: 10 }, { field: "price", type: "range" }] },
    want: [["facets[0][field]", "brand"], ["facets[0][size]", "10"], ["facets[1][field]", "price"], ["facets[1][type]", "range"]] },
  { name: "sort object", opts: { sort: { price: "asc" } }, want: [["sort[0][price]", "asc"]] },
  { name: "sort list of keys", opts: { sort: [{ price: "desc" }, { brand: "asc" }] },
    want: [["sort[0][price]", "desc"], ["sort[1][brand]", "asc"]] },
  { name: "sort shorthand strings", opts: { sort: ["-price", "brand"] },
    want: [["sort[0][price]", "desc"], ["sort[1][brand]", "asc"]] },
  { name: "relevance: no sort", opts: { sort: "" }, want: [] },
  { name: "rpp and page", opts: { rpp: 24, page: 3 }, want: [["rpp", "24"], ["page", "3"]] },
  { name: "filter_execution and extra params", opts: { filterExecution: "or", params: { session_id: "s 1" } },
    want: [["filter_execution", "or"], ["session_id", "s 1"]] },
  { name: "dfid comes first", opts: { dfid: "abc@product@1", rpp: 5 }, want: [["dfid", "abc@product@1"], ["rpp", "5"]] },
  { name: "escaping: & = + # ? % and spaces in values", opts: { filter: { brand: ["A&B=C", "x+y #1?", "100%", "two words"] } },
    want: [["filter[brand][]", "A&B=C"], ["filter[brand][]", "x+y #1?"], ["filter[brand][]", "100%"], ["filter[brand][]", "two words"]] },
  { name: "escaping: unicode values and field names", opts: { filter: { "catégorie": ["Été ☀️", "日本"] } },
    want: [["filter[catégorie][]", "Été ☀️"], ["filter[catégorie][]", "日本"]] },
  { name: "escaping: special characters in field names", opts: { filter: { "a&b=c d": "v" }, sort: { "x&y": "asc" } },
    want: [["filter[a&b=c d][]", "v"], ["sort[0][x&y]", "asc"]] },
  { name: "full combination keeps order", opts: {
      filter: { color: ["red", "blue"], price: { gte: 10 } }, exclude: { brand: ["x"] },
      facets: [{ field: "brand", size: 10 }], sort: [{ price: "asc" }], rpp: 10, page: 2 },
    want: [["filter[color][]", "red"], ["filter[color][]", "blue"], ["filter[price][gte]", "10"], ["exclude[brand][]", "x"],
      ["facets[0][field]", "brand"], ["facets[0][size]", "10"], ["sort[0][price]", "asc"], ["rpp", "10"], ["page", "2"]] },
];

for (const c of cases) {
  test(`buildQuery: ${c.name}`, () => {
    assert.deepEqual(pairs(buildQuery(c.opts)), c.want);
  });
}

test("buildQuery: exact wire form, brackets percent-encoded as the reference asks", () => {
  assert.equal(
    buildQuery({ filter: { color: ["red"], price: { gte: 10 } }, facets: [{ field: "brand", size: 10 }], sort: { price: "asc" } }),
    "filter%5Bcolor%5D%5B%5D=red&filter%5Bprice%5D%5Bgte%5D=10&facets%5B0%5D%5Bfield%5D=brand&facets%5B0%5D%5Bsize%5D=10&sort%5B0%5D%5Bprice%5D=asc",
  );
});

test("buildQuery: values never leak raw & = or spaces onto the wire", () => {
  const q = buildQuery({ filter: { brand: ["a&b=c d"] } });
  assert.equal(q, "filter%5Bbrand%5D%5B%5D=a%26b%3Dc%20d");
  assert.equal(q.split("&").length, 1);
});

test("buildQuery: decoding with literal or encoded brackets gives the same pairs", () => {
  const q = buildQuery({ filter: { color: ["red", "blue"] }, sort: { price: "desc" } });
  const literal = q.replaceAll("%5B", "[").replaceAll("%5D", "]");
  assert.ok(literal.includes("filter[color][]=red"));
  assert.deepEqual(pairs(literal), pairs(q));
});

test("buildQuery: rejects an unknown range operator", () => {
  assert.throws(() => buildQuery({ filter: { price: { from: 1 } } }), /unknown range operator/);
});

test("buildQuery: rejects an invalid sort order", () => {
  assert.throws(() => buildQuery({ sort: { price: "up" } }), /asc.*desc/);
});

test("buildQuery: rejects a facet without a field", () => {
  assert.throws(() => buildQuery({ facets: [{ size: 3 }] }), /field is required/);
});
