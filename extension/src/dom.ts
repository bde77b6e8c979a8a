/**
 * Building DOM nodes: user strings always go in as text (textContent), never HTML,
 * with their bidirectional controls made visible (`visibleText`).
 */

import { visibleText } from './logic';

/** A text node of `text`, its bidirectional controls made visible. */
export function textNode(text: string): Text {
  return document.createTextNode(visibleText(text));
}

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  options: {
    cls?: string;
    text?: string;
    attrs?: Record<string, string>;
    children?: (Node | null)[];
  } = {}
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (options.cls) {
    node.className = options.cls;
  }
  if (options.text !== undefined) {
    node.textContent = visibleText(options.text);
  }
  for (const [name, value] of Object.entries(options.attrs ?? {})) {
    node.setAttribute(name, value);
  }
  for (const child of options.children ?? []) {
    if (child) {
      node.appendChild(child);
    }
  }
  return node;
}

/** A table of text cells; `highlight[i]` marks row i. */
export function table(
  header: string[],
  rows: string[][],
  highlight: boolean[] = []
): HTMLTableElement {
  return el('table', {
    cls: 'jp-mlops-table',
    children: [
      el('thead', {
        children: [el('tr', { children: header.map(h => el('th', { text: h })) })]
      }),
      el('tbody', {
        children: rows.map((row, i) =>
          el('tr', {
            cls: highlight[i] ? 'jp-mlops-differs' : '',
            children: row.map(cell => el('td', { text: cell }))
          })
        )
      })
    ]
  });
}
