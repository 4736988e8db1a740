export class TileConflictError extends Error {
  readonly tileId: string;
  constructor(tileId: string, message: string) {
    super(message);
    this.name = "TileConflictError";
    this.tileId = tileId;
  }
}
