import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { orzoBinary } from "./helpers/binary.ts";
import { TestHost, TOPOLOGY } from "./helpers/netns.ts";

let host: TestHost;
let refusing: TestHost;
beforeAll(async () => {
  host = await TestHost.create("ping");
  refusing = await TestHost.create("noping", { pingSockets: false });
});
afterAll(async () => {
  await host?.destroy();
  await refusing?.destroy();
});

describe("ICMP echo flows", () => {
  test("requests go out on a ping socket; replies come back with the guest's id; the flow expires after 60 s", async () => {
    const r = await host.run([process.execPath, join(import.meta.dir, "fixtures", "ping-flow.ts")]);
    expect(r.stderr).toBe("");
    const out = JSON.parse(r.stdout);
    expect(out.replies).toEqual([
      { id: 4242, seq: 1, from: TOPOLOGY.router4, to: TOPOLOGY.host4, checksumOk: true },
      { id: 4242, seq: 2, from: TOPOLOGY.router4, to: TOPOLOGY.host4, checksumOk: true },
    ]);
    expect(out.stats).toMatchObject({ requests: 2, replies: 2, flowsOpened: 1, socketRefused: 0 });
    expect([out.afterRequests, out.beforeTimeout, out.afterTimeout]).toEqual([1, 1, 0]);
  });

  test("ping sockets refused by ping_group_range: one clear warning, pings dropped, orzo goes on", async () => {
    const r = await refusing.run([orzoBinary(), "pasta", "--config-net", "-4", "--", "sh", "-c", `ping -c 2 -i 0.2 -W 1 ${TOPOLOGY.router4}; echo done`]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n").pop()).toBe("done");
    const warnings = r.stderr.split("\n").filter((l) => l.includes("ping_group_range"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("cannot open a ping socket");
  });
});
