/**
 * The citty command tree (orzo, with pasta and passt below it) built from the option table, and the help text
 * citty renders from it. Parsing is not citty's: getopt-style clustering, repeatable options and stopping at
 * the first operand are done by parseOptions.
 */
import { defineCommand, renderUsage, type ArgsDef, type CommandDef } from "citty";
import type { CommandPath } from "./config.ts";
import { OPTIONS, type Mode, type OptionDef } from "./options.ts";
import { PROGRAM_NAME, VERSION } from "./version.ts";

/** citty argument definitions for the rows of the option table that select() keeps, in table order. */
function optionArgs(select: (def: OptionDef) => boolean): ArgsDef {
  const args: ArgsDef = {};
  for (const def of Object.values(OPTIONS) as OptionDef[]) {
    if (!select(def)) continue;
    // citty shows aliases as short options, so other long names are named in the description instead.
    const also = def.aliases === undefined ? "" : ` (also ${def.aliases.map((long) => `--${long}`).join(", ")})`;
    const help = def.kind === "refused" ? `Not supported yet: ${def.help}` : def.help;
    args[def.long] =
      def.kind === "flag" || (def.kind === "refused" && def.valueName === undefined)
        ? { type: "boolean", alias: def.short, description: help }
        : {
            type: "string",
            alias: def.short,
            valueHint: def.valueName,
            description: `${help}${def.kind === "multiple" ? " (may be repeated)" : ""}${also}`,
          };
  }
  return args;
}

const inMode = (mode: Mode) => (def: OptionDef) => def.modes === "both" || def.modes === mode;

const pastaArgs: ArgsDef = {
  ...optionArgs(inMode("pasta")),
  command: {
    type: "positional",
    required: false,
    description:
      "Command and arguments to run in a new network namespace (default: $SHELL); " +
      "a single number joins the network namespace of that process instead",
  },
};

/** pasta: a network namespace connected to the host through a tap device. */
export const pastaCommand = defineCommand({
  meta: {
    name: "pasta",
    version: VERSION,
    description: "Connect a network namespace to the host's network through a tap device",
  },
  args: pastaArgs,
});

/** passt: a qemu guest connected to the host through a UNIX domain socket. */
export const passtCommand = defineCommand({
  meta: {
    name: "passt",
    version: VERSION,
    description: "Connect a qemu guest to the host's network through a UNIX domain socket",
  },
  args: optionArgs(inMode("passt")),
});

const MODE_COMMANDS: Record<Mode, CommandDef> = { pasta: pastaCommand, passt: passtCommand };

/** orzo itself: the two modes as subcommands; with no subcommand it runs as pasta. */
export const orzoCommand = defineCommand({
  meta: {
    name: PROGRAM_NAME,
    version: VERSION,
    description: "User-mode networking for containers and virtual machines; without a command, runs as pasta",
  },
  args: optionArgs((def) => def.kind === "flag" && def.terminal),
  subCommands: MODE_COMMANDS,
});

/** The help text of a command; color keeps citty's terminal colors, otherwise they are stripped. */
export async function renderHelp(path: CommandPath, color: boolean): Promise<string> {
  const name = path[path.length - 1];
  const command = name === "orzo" ? orzoCommand : MODE_COMMANDS[name];
  const text = await renderUsage(command, path.length === 2 ? orzoCommand : undefined);
  return color ? text : Bun.stripANSI(text);
}
