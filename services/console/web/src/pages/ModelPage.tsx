// Placeholder: replaced by the page's implementation.
export function ModelPage() {
  return <section className="panel">ModelPage</section>;
}
