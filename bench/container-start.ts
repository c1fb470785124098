/**
 * Container start with each network (issue 18), run by hand as root: `bun run bench/container-start.ts [--runs N]`.
 *
 * Times `podman run --rm IMAGE true`, rootless, in the Debian 13 root of the ecosystem tests (test/ecosystem/):
 * with the rootless default network and orzo as pasta, the same with Debian 13's pasta, and with `--network none`,
 * interleaved (one of each, then the next round; one unmeasured round first), N rounds (default 11). Prints the
 * median (min–max) of each and what each pasta adds to a start over `--network none`. Not a test: it asserts
 * nothing beyond every run succeeding.
 */
import { parseArgs } from "node:util";
import { ECO_IMAGE, pastaTargets, RootlessRoot, type PastaTarget } from "../test/ecosystem/rootless.ts";

const { values: opts } = parseArgs({ options: { runs: { type: "string", default: "11" } }, strict: true });
const runs = Number(opts.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer, not ${opts.runs}`);

const [orzo, pasta] = pastaTargets();
const cases: { label: string; target: PastaTarget; network: string[] }[] = [
  { label: "orzo", target: orzo, network: [] },
  { label: "Debian 13's pasta", target: pasta, network: [] },
  { label: "--network none", target: orzo, network: ["--network", "none"] },
];

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const eco = await RootlessRoot.create("cstart", { image: true, log: (line) => console.error(line) });
try {
  const times = new Map(cases.map((c) => [c.label, [] as number[]]));
  for (let round = 0; round <= runs; round++) {
    for (const c of cases) {
      const started = performance.now();
      await eco.mustPodman(c.target, ["run", "--rm", ...c.network, ECO_IMAGE, "true"]);
      // Round 0 warms the caches (the image's layers, the binaries' pages) and is not counted.
      if (round > 0) times.get(c.label)!.push(performance.now() - started);
    }
  }
  const none = median(times.get("--network none")!);
  console.log(`podman run --rm IMAGE true, rootless, ${runs} interleaved runs each: median (min–max)`);
  for (const c of cases) {
    const t = times.get(c.label)!;
    const m = median(t);
    const added = c.label === "--network none" ? "" : `  adds ${(m - none).toFixed(1)} ms`;
    console.log(`  ${c.label.padEnd(18)} ${m.toFixed(1)} ms (${Math.min(...t).toFixed(1)}–${Math.max(...t).toFixed(1)})${added}`);
  }
  const orzoAdds = median(times.get("orzo")!) - none;
  const pastaAdds = median(times.get("Debian 13's pasta")!) - none;
  console.log(`  orzo adds ${(orzoAdds / pastaAdds).toFixed(2)}× what pasta adds`);
} finally {
  await eco.close();
}
