/**
 * Entry point. The namespace agent role must enter its namespaces while the process is still single-threaded,
 * so this file imports nothing statically: the agent loads only what entering needs, orzo proper loads the rest.
 * Both exit explicitly once done, so that a finished subprocess or a signal handler cannot keep them around.
 */
export {};

const AGENT_ARG = "__ns-agent";

const args = process.argv.slice(2);
if (args[0] === AGENT_ARG) {
  // require, not import(): awaiting would run Bun's event loop, which starts threads.
  const { enterFromArgument } = require("./ns/agent_enter.ts") as typeof import("./ns/agent_enter.ts");
  if (!enterFromArgument(args[1])) process.exit(1);
  const { runAgent } = await import("./ns/agent_process.ts");
  process.exit(await runAgent());
} else {
  const [{ main }, { invokedProgram }] = await Promise.all([import("./run.ts"), import("./cli/config.ts")]);
  process.exit(await main(invokedProgram(), args));
}
