/**
 * Entry point. The namespace agent role must enter its namespaces while the process is still single-threaded,
 * so this file imports nothing statically: the agent loads only what entering needs, orzo proper loads the rest.
 * Both exit explicitly once done, so that a finished subprocess or a signal handler cannot keep them around.
 * No top-level await: the executable is built as CommonJS bytecode (build.ts), which has none.
 */
export {};

const AGENT_ARG = "__ns-agent";

/** Runs the role the arguments ask for; resolves to the exit status. */
async function start(args: string[]): Promise<number> {
  if (args[0] === AGENT_ARG) {
    // require, not import(): awaiting would run Bun's event loop, which starts threads.
    const { enterFromArgument } = require("./ns/agent_enter.ts") as typeof import("./ns/agent_enter.ts");
    if (!enterFromArgument(args[1])) return 1;
    const { runAgent } = require("./ns/agent_process.ts") as typeof import("./ns/agent_process.ts");
    return await runAgent();
  }
  const { main } = require("./run.ts") as typeof import("./run.ts");
  const { invokedProgram } = require("./cli/config.ts") as typeof import("./cli/config.ts");
  return await main(invokedProgram(), args);
}

start(process.argv.slice(2)).then((code) => process.exit(code));
