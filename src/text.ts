/**
 * Text that reaches people through kube-apiserver. Warnings with control characters are dropped
 * by the apiserver and long ones truncated, and token claims are attacker-controlled, so every
 * value quoted from input passes through here.
 */
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/gu;

export function printable(text: string): string {
  return text.replace(UNPRINTABLE, '?');
}

/** Quotes an untrusted value for a message: printable, bounded, JSON-style quotes. */
export function quote(value: string, max = 64): string {
  const clean = printable(value);
  const cut = [...clean];
  const body = cut.length > max ? `${cut.slice(0, max - 1).join('')}…` : clean;
  return JSON.stringify(body);
}

/** Cuts text to `max` code points, marking the cut. */
export function truncate(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`;
}
