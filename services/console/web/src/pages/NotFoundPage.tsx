import { Link } from "react-router";

export function NotFoundPage() {
  return (
    <section className="panel">
      <h1>Page not found</h1>
      <p>
        <Link to="/projects">Back to projects</Link>
      </p>
    </section>
  );
}
