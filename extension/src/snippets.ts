import { el } from './dom';

/** What "Copy as code" can do with a line of Python: copy it, or insert it as a new
 * cell of the active notebook (false when there is none). */
export interface ISnippetActions {
  copy: (code: string) => void;
  insert: (code: string) => boolean;
}

/**
 * "Copy as code" and "Insert in notebook" buttons for `code`; a status line says what
 * happened (the code is shown there too, as text, so it can be read before use).
 */
export function snippetButtons(code: string, actions: ISnippetActions): HTMLElement {
  const status = el('span', { cls: 'jp-mlops-snippet-status', attrs: { role: 'status' } });
  const copy = el('button', {
    cls: 'jp-mlops-copy',
    text: 'Copy as code',
    attrs: { type: 'button', title: `Copy ${code}` }
  });
  copy.addEventListener('click', () => {
    actions.copy(code);
    status.textContent = `Copied: ${code}`;
  });
  const insert = el('button', {
    cls: 'jp-mlops-insert',
    text: 'Insert in notebook',
    attrs: { type: 'button', title: `Insert ${code} as a new cell` }
  });
  insert.addEventListener('click', () => {
    status.textContent = actions.insert(code)
      ? `Inserted: ${code}`
      : 'Open a notebook first: there is none to insert into.';
  });
  return el('span', { cls: 'jp-mlops-snippet', children: [copy, insert, status] });
}
