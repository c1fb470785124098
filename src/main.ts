/**
 * Entry point. Nothing is imported statically, so that a start that only prints help or exits with an error,
 * and stage 1 of an instance, load no more than they need. The process exits explicitly once done, so that a
 * finished child or a pending handle cannot keep it around.
 * No top-level await: the executable is built as CommonJS bytecode (build.ts), which has none.
 */
export {};

/** Runs orzo for the command line; resolves to the exit status. */
async function start(args: string[]): Promise<number> {
  const { main } = require("./run.ts") as typeof import("./run.ts");
  const { invokedProgram } = require("./cli/config.ts") as typeof import("./cli/config.ts");
  return await main(invokedProgram(), args);
}

start(process.argv.slice(2)).then((code) => process.exit(code));
