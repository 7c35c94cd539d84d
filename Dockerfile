# One image for every role: the command picks api, dispatcher, realtime, migrate or all.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/social ./cmd/social

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/social /social
USER nonroot
ENTRYPOINT ["/social"]
CMD ["all"]
