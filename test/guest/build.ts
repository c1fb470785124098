/**
 * The qemu guest for the passt tests: a Debian kernel and a busybox initramfs, built from Debian packages into a
 * cache directory (ORZO_GUEST_CACHE, else ~/.cache/orzo-guest) on first use and reused afterwards.
 *
 *   kernel:    the image package linux-image-cloud-amd64 depends on (virtio-net is a module there)
 *   initramfs: busybox (busybox-static), the virtio-net modules and what they depend on (read from each
 *              module's .modinfo, loaded in dependency order by /init), the host's socat with the libraries
 *              ldd names, a udhcpc hook, and /init: mount, load the modules, bring lo up, run /test.sh if
 *              present, power off.
 *
 * Packages come with `apt-get download` (after an `apt-get update` when the lists do not know them) and are
 * unpacked with `dpkg-deb -x`; the cpio archive (newc format) is written here, so no cpio tool is needed. A test
 * appends its own small archive holding /test.sh (guestArchive) and boots the concatenation: the kernel unpacks
 * every archive it finds in the initrd.
 *
 * Run directly (`bun test/guest/build.ts`), it builds the image and prints the two paths.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { basename, join } from "node:path";
import { concatBytes } from "../../src/wire/bytes.ts";

/** Bump when the image's contents change, so cached images are rebuilt. */
const IMAGE_VERSION = 2;
const KERNEL_META_PACKAGE = "linux-image-cloud-amd64";
const ROOT_MODULES = ["virtio_net", "virtio_pci"];

/** The guest's kernel and initramfs. */
export interface GuestImage {
  kernel: string;
  initrd: string;
}

/** A file for a cpio archive: a regular file (data), a directory, or a character device. */
export interface CpioEntry {
  path: string;
  mode: number;
  data?: Uint8Array;
  rdev?: [number, number];
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFCHR = 0o020000;

const INIT = `#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.order); do insmod /modules/$m.ko || echo "ORZO insmod $m failed"; done
ip link set lo up
i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
ip link set eth0 up
echo "ORZO boot $(uname -r)"
if [ -f /test.sh ]; then sh /test.sh; echo "ORZO exit $?"; fi
poweroff -f
`;

const UDHCPC_HOOK = `#!/bin/sh
case "$1" in
  bound|renew)
    ifconfig "$interface" "$ip" netmask "$subnet" up
    [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
    for r in $router; do ip route add default via "$r" dev "$interface"; break; done
    echo "$router" > /tmp/router
    echo "ORZO lease ip=$ip subnet=$subnet router=$router dns=$dns mtu=$mtu"
    ;;
esac
exit 0
`;

/** The cache directory. */
export function cacheDir(): string {
  return process.env.ORZO_GUEST_CACHE ?? join(homedir(), ".cache", "orzo-guest");
}

/** The kernel and base initramfs, built first if the cache does not hold this version of them. */
export function guestImage(log: (line: string) => void = () => {}): GuestImage {
  const dir = cacheDir();
  const image = { kernel: join(dir, "vmlinuz"), initrd: join(dir, "base.cpio") };
  const stamp = join(dir, "version");
  if (existsSync(image.kernel) && existsSync(image.initrd) && existsSync(stamp) && readFileSync(stamp, "utf8") === String(IMAGE_VERSION)) return image;
  mkdirSync(dir, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), "orzo-guest-"));
  try {
    build(work, image, log);
    writeFileSync(stamp, String(IMAGE_VERSION));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return image;
}

function build(work: string, image: GuestImage, log: (line: string) => void): void {
  const kernelPackage = dependencyOf(KERNEL_META_PACKAGE);
  log(`guest: downloading ${kernelPackage} and busybox-static`);
  aptDownload(work, [kernelPackage, "busybox-static"]);
  const debs = readdirSync(work).filter((n) => n.endsWith(".deb"));
  const root = join(work, "root");
  for (const deb of debs) sh(["dpkg-deb", "-x", join(work, deb), root]);
  const boot = join(root, "boot");
  const vmlinuz = readdirSync(boot).find((n) => n.startsWith("vmlinuz-"));
  if (!vmlinuz) throw new Error(`${kernelPackage} has no /boot/vmlinuz-*`);
  const release = vmlinuz.slice("vmlinuz-".length);
  const modules = loadOrder(join(root, "lib", "modules", release));
  log(`guest: kernel ${release}, modules ${modules.map((m) => m.name).join(" ")}`);

  const entries: CpioEntry[] = [];
  const dirs = new Set<string>();
  const dir = (path: string) => {
    const parts = path.split("/").filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const p = parts.slice(0, i).join("/");
      if (!dirs.has(p)) {
        dirs.add(p);
        entries.push({ path: p, mode: S_IFDIR | 0o755 });
      }
    }
  };
  const file = (path: string, data: Uint8Array, mode = 0o755) => {
    dir(path.slice(0, path.lastIndexOf("/")));
    entries.push({ path: path.replace(/^\//, ""), mode: S_IFREG | mode, data });
  };
  for (const d of ["/proc", "/sys", "/dev", "/tmp", "/run", "/etc"]) dir(d);
  entries.push({ path: "dev/console", mode: S_IFCHR | 0o600, rdev: [5, 1] });
  file("/init", new TextEncoder().encode(INIT));
  file("/udhcpc.sh", new TextEncoder().encode(UDHCPC_HOOK));
  file("/bin/busybox", readFileSync(join(root, "bin", "busybox")));
  for (const m of modules) file(`/modules/${m.name}.ko`, readFileSync(m.path), 0o644);
  file("/modules.order", new TextEncoder().encode(modules.map((m) => m.name).join("\n") + "\n"), 0o644);
  for (const path of withLibraries("/usr/bin/socat")) file(path, readFileSync(path));
  file("/etc/passwd", new TextEncoder().encode("root:x:0:0:root:/:/bin/sh\n"), 0o644);

  copyFileSync(join(boot, vmlinuz), `${image.kernel}.new`);
  writeFileSync(`${image.initrd}.new`, cpioArchive(entries));
  renameSync(`${image.kernel}.new`, image.kernel);
  renameSync(`${image.initrd}.new`, image.initrd);
}

/** The package a meta-package depends on (linux-image-cloud-amd64 → linux-image-6.1.0-N-cloud-amd64). */
function dependencyOf(meta: string): string {
  const find = () => /Depends: (\S+)/.exec(sh(["apt-cache", "depends", meta], true))?.[1];
  const found = find() ?? (aptUpdate(), find());
  if (!found) throw new Error(`apt-cache knows no dependency of ${meta}`);
  return found;
}

/** apt-get download into dir, updating the package lists once if that fails. */
function aptDownload(dir: string, packages: string[]): void {
  const argv = ["apt-get", "download", "-q", ...packages];
  if (Bun.spawnSync(argv, { cwd: dir, stdout: "ignore", stderr: "ignore" }).exitCode === 0) return;
  aptUpdate();
  sh(argv, false, dir);
}

function aptUpdate(): void {
  sh(["apt-get", "update", "-qq"]);
}

/** Runs a command; returns its stdout, throws with its stderr on failure (unless tolerant). */
function sh(argv: string[], tolerant = false, cwd?: string): string {
  const r = Bun.spawnSync(argv, { cwd, stdout: "pipe", stderr: "pipe", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  if (r.exitCode !== 0 && !tolerant) throw new Error(`${argv.join(" ")} failed (${r.exitCode}): ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/** The modules virtio-net needs, dependencies first, from the depends= field of each module's .modinfo. */
function loadOrder(moduleDir: string): { name: string; path: string }[] {
  const byName = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith(".ko")) byName.set(e.name.slice(0, -3).replaceAll("-", "_"), join(d, e.name));
    }
  };
  walk(join(moduleDir, "kernel"));
  const order: { name: string; path: string }[] = [];
  const visit = (name: string) => {
    if (order.some((m) => m.name === name)) return;
    const path = byName.get(name);
    if (!path) throw new Error(`module ${name} not found (compressed modules are not supported)`);
    const info = new TextDecoder("latin1").decode(readFileSync(path));
    const deps = /\0depends=([^\0]*)\0/.exec(info)?.[1] ?? "";
    for (const dep of deps.split(",").filter(Boolean)) visit(dep.replaceAll("-", "_"));
    order.push({ name, path });
  };
  for (const m of ROOT_MODULES) visit(m);
  return order;
}

/** A binary and the shared libraries ldd says it loads (paths as on this host, which is the guest's distribution). */
function withLibraries(binary: string): string[] {
  if (!existsSync(binary)) throw new Error(`${binary} is needed in the guest: install ${basename(binary)}`);
  const paths = [binary];
  for (const line of sh(["ldd", binary]).split("\n")) {
    const m = /(\/\S+) \(0x/.exec(line);
    if (m) paths.push(m[1]);
  }
  return paths;
}

/** A cpio archive in the newc format the kernel unpacks (regular files, directories, device nodes). */
export function cpioArchive(entries: readonly CpioEntry[]): Uint8Array {
  const chunks: Uint8Array[] = [];
  const enc = new TextEncoder();
  const hex = (v: number) => v.toString(16).padStart(8, "0");
  const pad = (n: number) => new Uint8Array((4 - (n % 4)) % 4);
  let ino = 1;
  for (const e of [...entries, { path: "TRAILER!!!", mode: 0 } as CpioEntry]) {
    const name = enc.encode(`${e.path}\0`);
    const size = e.data?.length ?? 0;
    const fields = [ino++, e.mode, 0, 0, 1, 0, size, 0, 0, e.rdev?.[0] ?? 0, e.rdev?.[1] ?? 0, name.length, 0];
    const header = enc.encode(`070701${fields.map(hex).join("")}`);
    chunks.push(header, name, pad(header.length + name.length));
    if (e.data) chunks.push(e.data, pad(size));
  }
  return concatBytes(chunks);
}

if (import.meta.main) {
  const image = guestImage((line) => console.error(line));
  console.log(`kernel ${image.kernel}\ninitrd ${image.initrd}`);
}
