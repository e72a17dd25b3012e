module example.com/gohttp-wrapper

go 1.22
