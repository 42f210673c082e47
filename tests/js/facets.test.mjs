// normalizeFacets: every facet shape the Doofinder documentation shows.
import { test } from "node:test";
import assert from "node:assert/strict";
import { normalizeFacets } from "../../gateway/static/imgsearch-client.js";

test("reference example: array of {field: {terms: {items, selected}}}", () => {
  const facets = [{ brand: { terms: { items: [{ name: "Adidas", count: 5 }, { name: "Nike", count: 3 }], selected: [] } } }];
  assert.deepEqual(normalizeFacets(facets), [{ field: "brand", type: "terms", items: [
    { value: "Adidas", count: 5, selected: false }, { value: "Nike", count: 3, selected: false }] }]);
});

test("reference schema: {key, terms} and {key, range} entries", () => {
  const facets = [
    { key: "color", terms: { items: [{ name: "red", count: 4 }, { name: "blue", count: 2 }], selected: [{ name: "blue", count: 2 }] } },
    { key: "price", range: { min: 5, max: 120.5, from: 10, to: 50 } },
  ];
  assert.deepEqual(normalizeFacets(facets), [
    { field: "color", type: "terms", items: [{ value: "red", count: 4, selected: false }, { value: "blue", count: 2, selected: true }] },
    { field: "price", type: "range", min: 5, max: 120.5, from: 10, to: 50 },
  ]);
});

test("object keyed by field; selected values missing from items stay listed", () => {
  const facets = {
    brand: { terms: { items: [{ name: "Acme", count: 7 }], selected: [{ name: "Zeta", count: 0 }, "Acme"] } },
    price: { range: { min: 1, max: 9 } },
  };
  assert.deepEqual(normalizeFacets(facets), [
    { field: "brand", type: "terms", items: [{ value: "Acme", count: 7, selected: true }, { value: "Zeta", count: 0, selected: true }] },
    { field: "price", type: "range", min: 1, max: 9, from: null, to: null },
  ]);
});

test("Elasticsearch-style buckets (key/doc_count) and range stats", () => {
  const facets = {
    category: { terms: { buckets: [{ key: "shirts", doc_count: 12 }, { key: "shoes", doc_count: 3, selected: true }] } },
    best_price: { range: { buckets: [{ key: "0.0-*", from: 0, doc_count: 15, stats: { min: 2.5, max: 99, avg: 30 } }] } },
  };
  assert.deepEqual(normalizeFacets(facets), [
    { field: "category", type: "terms", items: [{ value: "shirts", count: 12, selected: false }, { value: "shoes", count: 3, selected: true }] },
    { field: "best_price", type: "range", min: 2.5, max: 99, from: 0, to: null },
  ]);
});

test("flat {field, type, items} entries and range selection as gte/lte", () => {
  const facets = [
    { field: "size", type: "term", items: [{ value: "M", count: 2 }] },
    { field: "price", type: "range", min: 0, max: 10, selected: { gte: 2, lte: 8 } },
  ];
  assert.deepEqual(normalizeFacets(facets), [
    { field: "size", type: "terms", items: [{ value: "M", count: 2, selected: false }] },
    { field: "price", type: "range", min: 0, max: 10, from: 2, to: 8 },
  ]);
});

test("empty, missing and junk input give no facets; empty range keeps nulls", () => {
  assert.deepEqual(normalizeFacets(undefined), []);
  assert.deepEqual(normalizeFacets(null), []);
  assert.deepEqual(normalizeFacets([]), []);
  assert.deepEqual(normalizeFacets("x"), []);
  assert.deepEqual(normalizeFacets({ a: null, price: { range: { min: null, max: null } } }),
    [{ field: "price", type: "range", min: null, max: null, from: null, to: null }]);
});
