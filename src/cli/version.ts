// Imported (not read at run time) so `bun build --compile` embeds the version in the executable.
import packageJson from "../../package.json";

/** The program's own name, used in messages whatever name it was invoked by. */
export const PROGRAM_NAME = "orzo";

/** The release version, from package.json. */
export const VERSION: string = packageJson.version;

/** What `--version` prints: name and version. */
export const VERSION_TEXT = `${PROGRAM_NAME} ${VERSION}`;
