"""The few SVG pieces the report scripts draw (standard library only): a document, a line of
points with markers, a legend entry, and writing the file."""


def start(width, height):
    """The opening parts of a white `width × height` drawing."""
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
            '<rect width="100%" height="100%" fill="white"/>']


def points_line(parts, pts, X, Y, col):
    """`pts` [(x, y)] as a polyline (when there are two or more) with a dot at each point."""
    if len(pts) >= 2:
        d = " ".join(f"{X(a):.1f},{Y(b):.1f}" for a, b in pts)
        parts.append(f'<polyline points="{d}" fill="none" stroke="{col}" stroke-width="2"/>')
    for a, b in pts:
        parts.append(f'<circle cx="{X(a):.1f}" cy="{Y(b):.1f}" r="3" fill="{col}"/>')


def legend(parts, x, y, col, name):
    """A colour square at (x, y) and its name."""
    parts.append(f'<rect x="{x}" y="{y}" width="10" height="10" fill="{col}"/><text x="{x + 14}" y="{y + 9}">{name}</text>')


def write(path, parts):
    """Closes the drawing and writes it to `path`."""
    with open(path, "w") as f:
        f.write("\n".join(parts + ["</svg>"]))
