package boltstore_test

import (
	"errors"

	bolt "go.etcd.io/bbolt"
)

type boltTx = bolt.Tx

// checkTx runs bbolt's own consistency check.
func checkTx(tx *bolt.Tx) error {
	var errs []error
	for err := range tx.Check() {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
