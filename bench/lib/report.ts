/** Results: per-target summaries, the terminal table, the JSON document and the SVG chart of speed-ups. */
import type { Scenario } from "../scenarios.ts";
import type { Sample } from "./measure.ts";
import type { TargetKind } from "./targets.ts";

/** All samples and failures of one target in one scenario. */
export interface TargetResult {
  samples: Sample[];
  failures: string[];
  /** Median, minimum and maximum of the values; absent when every attempt failed. */
  median?: number;
  min?: number;
  max?: number;
  /** Medians of the extra numbers. */
  extra?: Record<string, number>;
}

/** One scenario's results. */
export interface ScenarioResult {
  id: string;
  title: string;
  unit: string;
  better: "higher" | "lower";
  ceiling: "veth" | "lo" | null;
  targets: Partial<Record<TargetKind, TargetResult>>;
  /** orzo against pasta, > 1 when orzo is better (higher throughput or rate, lower latency, memory or time). */
  speedup?: number;
  /** The same for the best observed pairs (orzo's best against pasta's best). */
  speedupBest?: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Fills in medians, ranges and the speed-up. */
export function summarise(s: Scenario, targets: Partial<Record<TargetKind, TargetResult>>): ScenarioResult {
  for (const t of Object.values(targets)) {
    if (!t || t.samples.length === 0) continue;
    const values = t.samples.map((x) => x.value);
    t.median = median(values);
    t.min = Math.min(...values);
    t.max = Math.max(...values);
    const keys = new Set(t.samples.flatMap((x) => Object.keys(x.extra ?? {})));
    t.extra = Object.fromEntries([...keys].map((k) => [k, median(t.samples.map((x) => x.extra?.[k]).filter((v): v is number => typeof v === "number" && !Number.isNaN(v)))]));
  }
  const r: ScenarioResult = { id: s.id, title: s.title, unit: s.unit, better: s.better, ceiling: s.ceiling, targets };
  const o = targets.orzo;
  const p = targets.pasta;
  if (o?.median !== undefined && p?.median !== undefined && o.median > 0 && p.median > 0) {
    r.speedup = s.better === "higher" ? o.median / p.median : p.median / o.median;
    r.speedupBest = s.better === "higher" ? o.max! / p.max! : p.min! / o.min!;
  }
  return r;
}

/** Formats a number with about three significant digits. */
export function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1000) return v.toFixed(0);
  if (a >= 100) return v.toFixed(1);
  if (a >= 10) return v.toFixed(2);
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(2);
}

/** A table cell: "median (min–max)", a note on partial failures, or "failed: reason". */
export function cell(t: TargetResult | undefined, detail?: (x: Record<string, number>) => string, width = 60): string {
  if (!t) return "–";
  if (t.median === undefined) {
    const reason = t.failures[0] ?? "no result";
    const text = `failed: ${reason}`;
    return text.length > width ? `${text.slice(0, width - 1)}…` : text;
  }
  let text = t.samples.length > 1 ? `${fmt(t.median)} (${fmt(t.min!)}–${fmt(t.max!)})` : fmt(t.median);
  const d = detail && t.extra ? detail(t.extra) : "";
  if (d) text += ` ${d}`;
  if (t.failures.length) text += ` [${t.failures.length}/${t.failures.length + t.samples.length} failed]`;
  return text;
}

/** The terminal table. */
export function table(results: ScenarioResult[], details: Map<string, Scenario["detail"]>): string {
  const header = ["scenario", "unit", "kernel (veth/lo)", "pasta", "orzo", "speed-up"];
  const rows = results.map((r) => {
    const detail = details.get(r.id);
    const ceiling = r.ceiling === null || !r.targets.veth ? "–" : `${cell(r.targets.veth, detail, 40)}${r.ceiling === "lo" ? " (lo)" : ""}`;
    return [r.title, r.unit, ceiling, cell(r.targets.pasta, detail), cell(r.targets.orzo, detail), r.speedup !== undefined ? `${r.speedup.toFixed(2)}×` : "–"];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cols: string[]) => cols.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [
    "speed-up = orzo relative to pasta, > 1 means orzo is better: orzo/pasta for throughput and rates,",
    "pasta/orzo for latency, memory and start-up time (lower is better there). Cells: median (min–max).",
    "",
    line(header),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
  ].join("\n");
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** A horizontal bar chart of speed-ups on a log scale centred on 1 (no dependencies, plain SVG). */
export function svg(results: ScenarioResult[], subtitle: string): string {
  const rowH = 22;
  const labelW = 440;
  const chartW = 460;
  const top = 70;
  const width = labelW + chartW + 90;
  const height = top + results.length * rowH + 40;
  const maxLog = 4; // 1/16 … 16
  const x = (ratio: number) => Math.round((labelW + chartW / 2 + (Math.max(-maxLog, Math.min(maxLog, Math.log2(ratio))) / maxLog) * (chartW / 2)) * 10) / 10;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="10" y="22" font-size="16" font-weight="bold">orzo speed-up relative to pasta (&gt; 1: orzo better)</text>`);
  out.push(`<text x="10" y="42" fill="#555">${esc(subtitle)}</text>`);
  for (const t of [1 / 16, 1 / 4, 1, 4, 16]) {
    const gx = x(t);
    out.push(`<line x1="${gx}" y1="${top - 8}" x2="${gx}" y2="${height - 30}" stroke="${t === 1 ? "#000" : "#ccc"}" stroke-width="${t === 1 ? 1.5 : 1}"/>`);
    out.push(`<text x="${gx}" y="${height - 14}" text-anchor="middle" fill="#555">${t >= 1 ? `${t}×` : `1/${1 / t}×`}</text>`);
  }
  results.forEach((r, i) => {
    const y = top + i * rowH;
    out.push(`<text x="${labelW - 8}" y="${y + 14}" text-anchor="end">${esc(r.title)}</text>`);
    if (r.speedup === undefined) {
      const why = r.targets.orzo?.median === undefined ? "orzo failed" : r.targets.pasta?.median === undefined ? "pasta failed" : "no ratio";
      out.push(`<text x="${x(1) + 6}" y="${y + 14}" fill="#a00">${why}</text>`);
      return;
    }
    const x0 = x(1);
    const x1 = x(r.speedup);
    const colour = r.speedup >= 1 ? "#2a7" : "#d54";
    out.push(`<rect x="${Math.min(x0, x1)}" y="${y + 4}" width="${Math.max(1, Math.round(Math.abs(x1 - x0) * 10) / 10)}" height="${rowH - 8}" fill="${colour}"/>`);
    out.push(`<text x="${Math.max(x0, x1) + 4}" y="${y + 14}">${r.speedup.toFixed(2)}×</text>`);
  });
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}
