/**
 * The CLI reference in docs/cli.md is generated from the commands' own
 * definitions (the text of `selfsup <command> --help`), so it cannot drift: a
 * test compares the file with {@link renderCliReference}. Regenerate with
 * `npm run build && node scripts/docs-cli.mjs`.
 */
import type { Command } from 'commander';
import { buildProgram } from './main.js';

export const REFERENCE_BEGIN =
  '<!-- BEGIN GENERATED CLI REFERENCE (node scripts/docs-cli.mjs; do not edit by hand) -->';
export const REFERENCE_END = '<!-- END GENERATED CLI REFERENCE -->';

/** The full `--help` text of one command, at a fixed width of 100 columns. */
function helpText(command: Command): string {
  let text = '';
  command.configureOutput({ writeOut: (s) => (text += s), writeErr: (s) => (text += s), getOutHelpWidth: () => 100 });
  command.outputHelp();
  return text.trimEnd();
}

/** Markdown: one section per command with its description and help text. */
export function renderCliReference(): string {
  const program = buildProgram();
  const sections = [REFERENCE_BEGIN, ''];
  for (const command of program.commands) {
    sections.push(
      `### selfsup ${command.name()}`,
      '',
      command.description(),
      '',
      '```text',
      helpText(command),
      '```',
      '',
    );
  }
  sections.push(REFERENCE_END);
  return sections.join('\n');
}

/** `document` with the generated part replaced by the current reference. */
export function updateCliReference(document: string): string {
  const begin = document.indexOf(REFERENCE_BEGIN);
  const end = document.indexOf(REFERENCE_END);
  if (begin < 0 || end < begin) throw new Error('docs/cli.md has no generated-reference markers');
  return document.slice(0, begin) + renderCliReference() + document.slice(end + REFERENCE_END.length);
}
