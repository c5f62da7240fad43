// Placeholder: replaced by the page's implementation.
export function TrainPage() {
  return <section className="panel">TrainPage</section>;
}
