module github.com/dbop-go/dbop/classifiers/mattnsqlite

go 1.26.0

require (
	github.com/dbop-go/dbop v0.2.0
	github.com/google/go-cmp v0.7.0
	github.com/mattn/go-sqlite3 v1.14.53
)

require golang.org/x/sync v0.24.0 // indirect

replace github.com/dbop-go/dbop => ../..
